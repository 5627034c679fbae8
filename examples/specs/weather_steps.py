"""Step functions of weather_units.yml (a python step: what the spec's SQL does not say)."""


def to_imperial(ctx):
    """weather.hourly_imperial: the forecast's temperatures in Fahrenheit, for a US dashboard."""
    ctx.execute(
        "CREATE SCHEMA IF NOT EXISTS weather; "
        "CREATE OR REPLACE TABLE weather.hourly_imperial AS "
        "SELECT location, observed_at, round(temperature_c * 9 / 5 + 32, 1) AS temperature_f, 'F' AS unit "
        "FROM staging.forecast"
    )
    return {"weather.hourly_imperial": ctx.query("SELECT count(*) FROM weather.hourly_imperial")[0][0]}
