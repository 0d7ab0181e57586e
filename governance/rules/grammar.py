"""The lark grammar of the Go subset Domino policies use for classification and visibility.

Kept as a string in a module (not a data file) so it ships with the package without any
package-data configuration.
"""

GRAMMAR = r"""
program: _item*
expression: expr

_item: stmt | ";"
block: "{" _item* "}"

?stmt: var_decl
     | short_decl
     | assign
     | index_assign
     | if_stmt
     | return_stmt

var_decl: "var" NAME type ("=" expr)?
short_decl: NAME ":=" expr
assign: NAME "=" expr
index_assign: NAME "[" expr "]" "=" expr
if_stmt: "if" expr block ("else" (if_stmt | block))?
return_stmt: "return" expr

type: type_name
    | "[" "]" RUNE_KW            -> rune_slice_type

type_name: STRING_KW | FLOAT64_KW | INT_KW | BOOL_KW

?expr: or_expr
?or_expr: and_expr
        | or_expr "||" and_expr                 -> or_op
?and_expr: cmp_expr
         | and_expr "&&" cmp_expr               -> and_op
?cmp_expr: sum_expr
         | sum_expr CMP_OP sum_expr             -> compare
?sum_expr: product
         | sum_expr (PLUS | MINUS) product      -> binary
?product: unary
        | product MUL_OP unary                  -> binary
?unary: postfix
      | "!" unary                               -> not_op
      | MINUS unary                             -> neg
?postfix: atom
        | postfix "[" expr "]"                  -> index
        | postfix "." "(" type ")"              -> type_assert
        | postfix "." NAME                      -> selector
        | postfix "(" [expr ("," expr)*] ")"    -> call
?atom: STRING                                   -> string
     | RAW_STRING                               -> raw_string
     | RUNE                                     -> rune
     | NUMBER                                   -> number
     | TRUE                                     -> true
     | FALSE                                    -> false
     | NAME                                     -> name
     | "(" expr ")"
     | type_name "(" expr ")"                   -> convert
     | "[" "]" RUNE_KW "(" expr ")"             -> to_runes

STRING_KW: "string"
FLOAT64_KW: "float64"
INT_KW: "int"
BOOL_KW: "bool"
RUNE_KW: "rune"
TRUE: "true"
FALSE: "false"

CMP_OP: "==" | "!=" | "<=" | ">=" | "<" | ">"
PLUS: "+"
MINUS: "-"
MUL_OP: "*" | "/" | "%"

STRING: /"(?:[^"\\\n]|\\.)*"/
RAW_STRING: /`[^`]*`/
RUNE: /'(?:[^'\\\n]|\\.[^']*)'/
NUMBER: /(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?/
NAME: /[A-Za-z_][A-Za-z0-9_]*/

LINE_COMMENT: /\/\/[^\n]*/
BLOCK_COMMENT: /\/\*(.|\n)*?\*\//
%ignore LINE_COMMENT
%ignore BLOCK_COMMENT
%ignore /[ \t\f\r\n]+/
"""
