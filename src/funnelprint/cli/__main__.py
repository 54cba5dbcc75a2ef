from funnelprint.cli import main

main()
