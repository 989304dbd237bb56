"""Browser tests as a package: its conftest must not shadow the other folders' `from conftest import`."""
