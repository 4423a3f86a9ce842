/* The healer's audit hook, in C. Python calls an audit hook for every audit event of the process
 * (about 70,000 while the HF stack imports: open, import, compile, object.__getattr__, ...), and
 * `exec` alone comes about 9,000 times (each module's body, dataclasses' generated methods). A hook
 * written in Python costs a Python call for each.
 *
 * This hook returns at once for every event but "exec", and answers the two common exec cases as the
 * healer's Python hook (odin_compat._heal._audit) would, before calling it:
 * - the import system running a module from its file, or frozen into the interpreter: return;
 * - a caller whose module the healer has already ruled out (its `_skipped_callers` cache says True):
 *   return.
 * Everything else goes to the Python hook, called as CPython calls a Python hook: with tracing off (so
 * profilers do not see it), and an exception it raises propagates to the caller of exec. Where this
 * module was not built, _heal installs that Python hook itself, with the same behaviour. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* Given once by install(), kept for the life of the process. */
static PyObject *on_exec = NULL;       /* the Python hook */
static PyObject *import_system = NULL; /* the namespace the import system execs modules from */
static PyObject *skipped = NULL;       /* {caller's __name__: True if never a rebuilder} */
static PyObject *exec_event = NULL;
static PyObject *name_key = NULL;
static PyObject *frozen_prefix = NULL;

/* 1 where the Python hook would return without doing anything, 0 where it must be called. */
static int
answered_here(PyObject *args)
{
    if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) < 1) {
        return 0;
    }
    PyObject *code = PyTuple_GET_ITEM(args, 0);
    if (!PyCode_Check(code)) {
        return 1; /* `type(code) is not CodeType: return` */
    }
    PyObject *globals = PyEval_GetGlobals(); /* the caller of exec (borrowed) */
    if (globals == NULL || !PyDict_CheckExact(globals)) {
        return 0;
    }
    if (globals == import_system) {
        PyObject *filename = ((PyCodeObject *)code)->co_filename;
        /* `co_filename[:1] != "<" or co_filename.startswith("<frozen ")`: a module being imported */
        if (!PyUnicode_Check(filename) || PyUnicode_GET_LENGTH(filename) == 0) {
            return 0;
        }
        if (PyUnicode_READ_CHAR(filename, 0) != '<') {
            return 1;
        }
        Py_ssize_t frozen = PyUnicode_Tailmatch(filename, frozen_prefix, 0, PY_SSIZE_T_MAX, -1);
        if (frozen < 0) {
            PyErr_Clear();
            return 0;
        }
        return frozen == 1;
    }
    PyObject *name = PyDict_GetItemWithError(globals, name_key);
    if (name == NULL) {
        PyErr_Clear();
        return 0;
    }
    PyObject *skip = PyDict_GetItemWithError(skipped, name);
    if (skip == NULL) {
        PyErr_Clear();
        return 0;
    }
    return skip == Py_True;
}

static int
hook(const char *event, PyObject *args, void *data)
{
    (void)data;
    if (event[0] != 'e' || strcmp(event, "exec") != 0 || answered_here(args)) {
        return 0;
    }
    PyThreadState *ts = PyThreadState_Get();
    PyThreadState_EnterTracing(ts);
    PyObject *result = PyObject_CallFunctionObjArgs(on_exec, exec_event, args, NULL);
    PyThreadState_LeaveTracing(ts);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

static PyObject *
install(PyObject *module, PyObject *const *argv, Py_ssize_t argc)
{
    (void)module;
    if (argc != 3) {
        PyErr_SetString(PyExc_TypeError, "install(callback, import_namespace, skipped_callers)");
        return NULL;
    }
    if (on_exec != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the exec hook is already installed");
        return NULL;
    }
    if (!PyCallable_Check(argv[0]) || !PyDict_CheckExact(argv[2]) ||
        !(argv[1] == Py_None || PyDict_Check(argv[1]))) {
        PyErr_SetString(PyExc_TypeError,
                        "install(callback, import_namespace, skipped_callers): a callable, a dict or "
                        "None, and a dict");
        return NULL;
    }
    exec_event = PyUnicode_InternFromString("exec");
    name_key = PyUnicode_InternFromString("__name__");
    frozen_prefix = PyUnicode_InternFromString("<frozen ");
    if (exec_event == NULL || name_key == NULL || frozen_prefix == NULL) {
        Py_CLEAR(exec_event);
        Py_CLEAR(name_key);
        Py_CLEAR(frozen_prefix);
        return NULL;
    }
    on_exec = Py_NewRef(argv[0]);
    import_system = Py_NewRef(argv[1]);
    skipped = Py_NewRef(argv[2]);
    /* As with sys.addaudithook, a hook already in place may refuse this one (silently, by raising an
     * Exception on "sys.addaudithook"); any other error is raised here. */
    if (PySys_AddAuditHook(hook, NULL) < 0) {
        Py_CLEAR(on_exec);
        Py_CLEAR(import_system);
        Py_CLEAR(skipped);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"install", (PyCFunction)(void (*)(void))install, METH_FASTCALL,
     "install(callback, import_namespace, skipped_callers): call callback(\"exec\", args) for the exec "
     "audit events of the process that callback would not answer by returning at once (see the module "
     "source), and for no other event. Once per process; it cannot be removed."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "odin_compat._audit", "The healer's audit hook, in C.", -1, methods,
};

PyMODINIT_FUNC
PyInit__audit(void)
{
    return PyModule_Create(&module_def);
}
