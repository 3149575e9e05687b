"""campaign_monitor"""
