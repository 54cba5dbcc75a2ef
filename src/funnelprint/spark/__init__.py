"""The trait pipeline on Apache Spark, for logs beyond one machine (optional extra:
``pip install 'funnelprint[spark]'``, and a Java runtime). Nothing else in funnelprint
imports it, so the local pipeline never needs a JVM."""
