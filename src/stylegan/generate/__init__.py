"""stylegan.generate"""
