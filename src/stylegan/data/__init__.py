"""stylegan.data"""
