import type { ErrorRequestHandler, RequestHandler } from 'express';
import { DomainError, type ErrorKind } from '../errors.ts';
import type { Logger } from '../log.ts';

const statusOf: Record<ErrorKind, number> = {
  invalid: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  gone: 410,
  unprocessable: 422,
  too_large: 413,
  unsupported_media: 415,
  rate_limited: 429,
};

interface BodyParserError {
  type?: string;
  status?: number;
  limit?: number;
}

function fromBodyParser(error: BodyParserError): DomainError | undefined {
  switch (error.type) {
    case 'entity.parse.failed':
      return new DomainError('invalid', 'invalid_json', 'the request body is not valid json');
    case 'entity.too.large':
      return new DomainError(
        'too_large',
        'body_too_large',
        `the request body is over ${error.limit} bytes`,
      );
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new DomainError(
        'unsupported_media',
        'unsupported_encoding',
        'the request body encoding is not supported',
      );
    case 'request.aborted':
      return new DomainError('invalid', 'request_aborted', 'the request was aborted');
    default:
      // Other body failures (a broken gzip stream, say) arrive as 4xx http-errors from body-parser.
      if (error.status === 413)
        return new DomainError('too_large', 'body_too_large', 'the request body is too large');
      if (error.status === 415)
        return new DomainError(
          'unsupported_media',
          'unsupported_encoding',
          'the request body encoding is not supported',
        );
      if (error.status && error.status >= 400 && error.status < 500) {
        return new DomainError('invalid', 'invalid_body', 'the request body could not be read');
      }
      return undefined;
  }
}

export const notFound: RequestHandler = (req, res) => {
  res
    .status(404)
    .json({ error: { code: 'not_found', message: `no route for ${req.method} ${req.path}` } });
};

/** The one place errors become HTTP answers; anything unexpected is logged and hidden. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error, _req, res, _next) => {
    const parserError = fromBodyParser(error as BodyParserError);
    const domain = error instanceof DomainError ? error : parserError;
    if (domain) {
      res.status(statusOf[domain.kind]).json({
        error: {
          code: domain.code,
          message: domain.message,
          ...(domain.details ? { details: domain.details } : {}),
        },
      });
      return;
    }
    logger.error({ err: error, reqId: res.locals.requestId as string }, 'unexpected error');
    if (res.headersSent) return;
    res
      .status(500)
      .json({ error: { code: 'internal_error', message: 'something went wrong on our side' } });
  };
}

export function unsupportedMediaType(expected: string): DomainError {
  return new DomainError(
    'unsupported_media',
    'unsupported_media_type',
    `the request body must be ${expected}`,
  );
}
