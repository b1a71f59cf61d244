"""Pretraining on video without actions: inverse-dynamics pseudo-labels (idm) and latent actions (latent)."""
