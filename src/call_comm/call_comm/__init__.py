"""CALL latent communication: range gate, wire codec, authentication, inbox and V2V node."""
