"""The typed-command sim: a person types instructions, a policy acts in the tabletop."""
