"""stylegan.io"""
