"""diqkd.reconciliation"""
