"""Stage 3: SHAP values and evaluation plots for the trained model."""
