"""riskgrade features package."""

import warnings

# With the optional ``spark`` extra installed, pandera imports ``pyspark.pandas`` on its own
# import, and PySpark warns at import that it does not fully support pandas 3 (which the
# project locks). No riskgrade code uses pandas-on-Spark (the Spark engine goes through Arrow),
# so that one import-time warning would only add noise to every command's stderr.
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)
