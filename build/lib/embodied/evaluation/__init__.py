"""Rollouts, success rates and videos of episodes."""
