"""Requests to SageMaker and Lambda.

Service-model validation, regions, labeling jobs, training, tuning, pre-flight, endpoints and the
Lambda zip.
"""
