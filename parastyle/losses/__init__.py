"""Loss functions: pure functions of tensors, each with its equation in the docstring."""
from parastyle.losses.contrastive import (IGNORE_INDEX, meta_pair_weights, meta_regularization_loss,
                                          supcon_loss, symmetric_info_nce, weighted_contrastive_loss)
from parastyle.losses.prototypes import PrototypeBank, prototype_alignment_loss

__all__ = ["IGNORE_INDEX", "supcon_loss", "meta_pair_weights", "meta_regularization_loss",
           "weighted_contrastive_loss", "symmetric_info_nce", "PrototypeBank", "prototype_alignment_loss"]
