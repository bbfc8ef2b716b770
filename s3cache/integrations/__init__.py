"""Integrations where users already cache: litellm (library and proxy), LangChain and LangGraph.
Each module imports its framework only when used."""
