"""stylegan.augment"""
