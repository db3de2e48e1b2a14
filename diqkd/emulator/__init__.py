"""diqkd.emulator"""
