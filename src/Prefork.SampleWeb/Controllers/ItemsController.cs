using Microsoft.AspNetCore.Mvc;

namespace Prefork.SampleWeb.Controllers;

/// <summary>An MVC controller: GET /api/items/{id} as JSON.</summary>
[ApiController]
[Route("api/items")]
public sealed class ItemsController : ControllerBase
{
    public sealed record Item(int Id, string Name, int ServedBy);

    [HttpGet("{id:int}")]
    public ActionResult<Item> Get(int id) =>
        id < 0 ? NotFound() : new Item(id, $"item {id}", Environment.ProcessId);
}
