"""Training: data set readers, pair sampling and augmentation, the balanced logistic loss, the trainer."""
