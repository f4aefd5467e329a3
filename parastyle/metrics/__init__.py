"""Evaluation metrics: classification (UAR, macro-F1, accuracy, confusion)."""
from parastyle.metrics.classification import (accuracy, balanced_accuracy, classification_report,
                                              confusion_matrix, macro_f1)

__all__ = ["accuracy", "balanced_accuracy", "classification_report", "confusion_matrix", "macro_f1"]
