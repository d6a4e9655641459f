# Astro Runtime 3.x (Airflow 3.3). The base image copies the project into /usr/local/airflow and installs
# requirements.txt; the line below installs this project's distribution (the provider that registers the
# nylas and dataverse connection types, and the pipeline code the DAGs import).
FROM astrocrpublic.azurecr.io/runtime:3.3-2

RUN pip install --no-cache-dir --no-deps /usr/local/airflow
