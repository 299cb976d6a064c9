//! An AWS KMS key provider for pci-vault (in progress).
