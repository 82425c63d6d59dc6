-- Operators change a host's enabled task types and concurrency from the dashboard: the agent
-- applies them at once (a `configure` command) and the inventory is rewritten on the head.

ALTER TABLE agent_commands DROP CONSTRAINT agent_commands_command_check;
ALTER TABLE agent_commands ADD CONSTRAINT agent_commands_command_check
    CHECK (command IN ('drain', 'undrain', 'restart', 'stop', 'configure'));
