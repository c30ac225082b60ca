"""stylegan.metrics"""
