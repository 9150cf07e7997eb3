// Swagger UI on paymesh's own /openapi.json. A file, not an inline script, so that the page's
// Content-Security-Policy can allow scripts from this origin only. validatorUrl: null keeps the
// page from sending the document to swagger.io's validator (the docs work offline).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: false,
  tryItOutEnabled: false,
});
