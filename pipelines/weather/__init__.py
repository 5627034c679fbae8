"""The weather pipeline's step functions (unit conversion, range checks): the ``open_meteo`` connector's; the pipeline is the spec ``pipelines/specs/weather.yml``."""
