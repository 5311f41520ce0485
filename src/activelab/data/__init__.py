"""Reading images and tables: folders, ImageFolder trees, CSV/parquet, bundled datasets."""
