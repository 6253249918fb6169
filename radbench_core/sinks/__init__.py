"""Where finished records go besides the run folder: experiment trackers (MLflow first).

A sink only reads a run folder (records, predictions, manifest) and never writes into it, so a
tracker that is down or misconfigured cannot lose or change a result.
"""
