"""Leak-free splits, ranking metrics, protocols and the leaderboard."""
