"""The built-in tasks, plugins on the same API as a consortium's own (`learning.plugin`).

- `tabular`: breast cancer (binary, AUC), diabetes (regression, R²) and the generic tabular task
  of a site's own CSV, with a linear model or an MLP;
- `digits`: scikit-learn's 8x8 handwritten digits (10 classes, accuracy) with a small CNN, and a
  loader for a site's own image folder;
- `surveillance`: weekly case counts per region from an SEIR model shipped as code (forecasting,
  MAE) with a small GRU.
"""
