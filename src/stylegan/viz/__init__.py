"""stylegan.viz"""
