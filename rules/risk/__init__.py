"""The learned churn-risk model: features (training = serving) and pure scoring."""
