"""diqkd.security"""
