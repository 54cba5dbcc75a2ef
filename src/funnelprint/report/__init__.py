"""Human-facing output: figures of what the models learned."""
