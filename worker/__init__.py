"""d2q: doc2query document expansion for Elasticsearch and OpenSearch."""

__version__ = "0.1.0"
