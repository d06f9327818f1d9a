"""Domain errors -> HTTP responses, in one place for every API function."""

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from .errors import InvalidInput, NotFoundError


def register_error_handlers(app: APIGatewayRestResolver) -> None:
    @app.exception_handler(InvalidInput)
    def _invalid(err: InvalidInput) -> Response:
        return Response(status_code=400, content_type=content_types.APPLICATION_JSON, body={"message": str(err)})

    @app.exception_handler(NotFoundError)
    def _missing(err: NotFoundError) -> Response:
        return Response(status_code=404, content_type=content_types.APPLICATION_JSON, body={"message": str(err)})
