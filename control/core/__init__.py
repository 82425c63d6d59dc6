"""The core that agents and the head share: database, migrations, SQL, queue, task types,
fleet state, storage, settings, errors, redaction, secrets, inventory, URLs, the pipeline flow."""
