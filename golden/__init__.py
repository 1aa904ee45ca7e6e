"""Bit-exact golden model of fully-integer Transformer inference (Lin et al. 2020)."""
