"""Everything torch: DH-AT networks, data, attacks, losses, the three training stages."""
