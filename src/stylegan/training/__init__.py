"""stylegan.training"""
