namespace Prefork.Config;

/// <summary>A configuration the master refuses: the message names the key, the value and what is allowed.</summary>
public sealed class ConfigException(string message) : Exception(message);
