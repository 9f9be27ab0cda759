using Npgsql;

namespace TechEmpowerGateway;

public readonly record struct World(int Id, int RandomNumber);

public readonly record struct Fortune(int Id, string Message);

/// <summary>
/// The two queries of TechEmpower's db and fortunes tests, blocking (sync and threads workers: the
/// calling thread waits) and asynchronous (epoll: the worker's loop serves other connections while
/// PostgreSQL answers). One pool per worker process; its size is the connection string's
/// <c>Max Pool Size</c>, and <c>Max Auto Prepare</c> makes both statements server-side prepared
/// after their first few uses on each physical connection.
/// </summary>
public sealed class Database : IDisposable
{
    private const string WorldSql = "SELECT id, randomnumber FROM world WHERE id = $1";
    private const string FortuneSql = "SELECT id, message FROM fortune";

    private readonly NpgsqlDataSource _source;

    public Database(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        // Without it every query is parsed and planned again: TechEmpower's rules allow preparing.
        if (builder.MaxAutoPrepare == 0) builder.MaxAutoPrepare = 4;
        // Nothing to reset between requests: no session state is ever changed.
        builder.NoResetOnClose = true;
        _source = NpgsqlDataSource.Create(builder.ConnectionString);
    }

    public string Describe()
    {
        var b = new NpgsqlConnectionStringBuilder(_source.ConnectionString);
        return $"pool {b.MinPoolSize}..{b.MaxPoolSize} per worker, max auto prepare {b.MaxAutoPrepare}, multiplexing {b.Multiplexing}";
    }

    public World LoadWorld(int id)
    {
        using var command = _source.CreateCommand(WorldSql);
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = id });
        using var reader = command.ExecuteReader();
        reader.Read();
        return new World(reader.GetInt32(0), reader.GetInt32(1));
    }

    // The asynchronous forms run off the caller's context (ConfigureAwait(false)): on an epoll worker
    // the query's result is read and its reader closed on the thread that received it, and only the
    // finished row goes back to the event loop. Awaiting on the loop instead costs a hop to the loop
    // and back per query, and with multiplexing Npgsql reads the next command's result on that
    // connection only after this reader is closed: every query would wait for the loop's next turn.

    public async ValueTask<World> LoadWorldAsync(int id)
    {
        var command = _source.CreateCommand(WorldSql);
        await using (command.ConfigureAwait(false))
        {
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = id });
            var reader = await command.ExecuteReaderAsync().ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                await reader.ReadAsync().ConfigureAwait(false);
                return new World(reader.GetInt32(0), reader.GetInt32(1));
            }
        }
    }

    public List<Fortune> LoadFortunes()
    {
        var fortunes = new List<Fortune>(16);
        using var command = _source.CreateCommand(FortuneSql);
        using var reader = command.ExecuteReader();
        while (reader.Read()) fortunes.Add(new Fortune(reader.GetInt32(0), reader.GetString(1)));
        return fortunes;
    }

    public async ValueTask<List<Fortune>> LoadFortunesAsync()
    {
        var fortunes = new List<Fortune>(16);
        var command = _source.CreateCommand(FortuneSql);
        await using (command.ConfigureAwait(false))
        {
            var reader = await command.ExecuteReaderAsync().ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
                while (await reader.ReadAsync().ConfigureAwait(false)) fortunes.Add(new Fortune(reader.GetInt32(0), reader.GetString(1)));
        }
        return fortunes;
    }

    public void Dispose() => _source.Dispose();
}
