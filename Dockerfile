# Built by `astro dev start`, `astro dev pytest`, `astro dev parse` and `astro deploy` alike, so the image
# that is tested is the image that is deployed. Astro Runtime tags read <Airflow major.minor>-<Astronomer
# patch>; the Astro CLI takes the Runtime version from this first FROM line.
FROM astrocrpublic.azurecr.io/runtime:3.3-2

# The Runtime image's ONBUILD steps have run by now: packages.txt and requirements.txt (this project's
# dependencies, and pytest for the commands above) are installed, and the build context (see
# .dockerignore) is in /usr/local/airflow. What is left is this project's own distribution: the provider
# that registers the `nylas` and `dataverse` connection types, and the package the DAGs and the plugin
# import. --no-deps: its dependencies come from requirements.txt, so nothing here can move Airflow.
USER root
RUN pip install --no-cache-dir --no-deps --root-user-action=ignore /usr/local/airflow
USER astro
