"""The names of SyntheticDataset's degradations. Their own light module: `ppir make-synthetic-data --help` lists
them without importing the data code (cv2, Paddle); ppir/data/synthetic.py implements each."""
DEGRADATIONS = ("gaussian_noise", "poisson_gaussian_noise", "motion_blur", "rain")
