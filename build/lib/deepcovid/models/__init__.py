"""Backbone registry and the Lightning classifier."""
