"""Analysis: pictures of what a model does. Figures (``plots``: DET curves, score histograms,
embedding maps, attention) and the visualisation of a trained model (``visualization``: t-SNE /
PCA with the silhouette score, attention with a silence check). The only part of the package
that imports matplotlib."""
