"""The daily weather pipeline (Open-Meteo to the warehouse)."""
