"""stylegan.networks"""
