"""CALL world model: DreamerV3 RSSM over the BEV, conditioned on shared latents + intentions."""
