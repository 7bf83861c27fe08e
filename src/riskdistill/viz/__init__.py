"""Visualisation: pure rendering of simulator state and model outputs to images and animations.

Functions here only draw (``render_*``) and write image files (``save_*``); they never change the world.
See :mod:`riskdistill.viz.topdown` for the top-down (bird's-eye) renderer.
"""
