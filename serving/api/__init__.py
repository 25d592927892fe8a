"""The HTTP layer's shared pieces: one error model, one caller dependency, one id parser."""
