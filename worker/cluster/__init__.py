"""The search engine side: client, engine differences, reader, writer, mappings."""
