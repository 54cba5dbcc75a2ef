"""Customer trait profiles: token features, per-customer aggregation, NMF traits, segments,
trait descriptions and their quality measures."""
